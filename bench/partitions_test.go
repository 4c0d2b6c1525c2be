package bench

import (
	"context"
	"testing"
	"time"
)

func TestPartitionsSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	checkPart(t, RunPartitions(ctx, tinyConfig(t)))
}
