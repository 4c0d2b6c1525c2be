package scaffold

import (
	"fmt"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
)

func int32p(v int32) *int32 { return &v }

// SuggestMasking picks the strongest strategy that fits the column, checked
// with the same rules the store checks the live schema with, so the
// suggestion never shows as schema drift. It returns nil when none fits.
func SuggestMasking(category string, col Column) (*privacyv1.Masking, string) {
	if col.Generated {
		return nil, "no masking: the column is generated from other columns; mask those"
	}
	type candidate struct {
		m   privacyv1.Masking
		why string
	}
	var cands []candidate
	add := func(s privacyv1.MaskingStrategy, why string) {
		cands = append(cands, candidate{privacyv1.Masking{Strategy: s}, why})
	}
	constraint := "NOT NULL"
	if col.Unique {
		constraint = "NOT NULL UNIQUE"
	}
	if col.Nullable {
		add(privacyv1.MaskNullify, "nullable: NULL keeps nothing")
	}
	if category == "user.contact.email" {
		add(privacyv1.MaskUniqueEmail, constraint+" e-mail: a unique, undeliverable address")
	}
	switch {
	case col.Unique:
		add(privacyv1.MaskHash, constraint+": a keyed digest stays unique")
		add(privacyv1.MaskRandomize, constraint+": random values of this type do not repeat")
	case col.Kind == masking.KindDate || col.Kind == masking.KindTimestamp || col.Kind == masking.KindTimestampTZ:
		m := privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Granularity: "year"}
		cands = append(cands, candidate{m, constraint + " date: kept to the year only"})
	case col.Kind == masking.KindText:
		add(privacyv1.MaskRedact, constraint+": a fixed value")
		cands = append(cands, candidate{privacyv1.Masking{Strategy: privacyv1.MaskPartial, KeepLast: int32p(0)}, constraint + ", too short for [redacted]: every character replaced by *"})
	case col.Kind == masking.KindInteger || col.Kind == masking.KindDecimal || col.Kind == masking.KindFloat:
		if category == "user.demographic.age" || category == "user.financial.income" {
			add(privacyv1.MaskGeneralize, constraint+" number: coarsened to a range of 10")
		}
		add(privacyv1.MaskRandomize, constraint+" number: a random value")
	default:
		add(privacyv1.MaskRandomize, constraint+": a random value")
	}
	for _, c := range cands {
		m := c.m
		if masking.Check(&m, col.ColumnInfo) == nil {
			return &m, c.why
		}
	}
	return nil, fmt.Sprintf("no masking strategy fits a %s %s column: keep onErasure delete, or allow NULL in it", constraint, col.Type)
}
