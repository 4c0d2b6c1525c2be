package scaffold

import (
	"testing"

	"github.com/lethe-dev/lethe/internal/masking"
)

// The name of the payment processor a row used is not personal; the
// processor's id of the customer is. (The demo's payment_methods.processor
// was reported as unmapped personal data before.)
func TestProcessorNameIsNotAProcessorsCustomerID(t *testing.T) {
	table := &Table{Name: "payment_methods"}
	for name, want := range map[string]string{
		"processor":             "",
		"gateway":               "",
		"processor_customer_id": "user.financial.payment.processor_id",
		"stripe_customer_id":    "user.financial.payment.processor_id",
		"paypal_account_ref":    "user.financial.payment.processor_id",
	} {
		col := Column{ColumnInfo: masking.ColumnInfo{Name: name, Type: "text", Kind: masking.KindText}}
		if got := Classify(table, col, false, nil).Category; got != want {
			t.Errorf("%s: category %q, want %q", name, got, want)
		}
	}
}
