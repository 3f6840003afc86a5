package matrix

import (
	"slices"
	"testing"
)

func TestMergeStagesKeepsEachServicesOrder(t *testing.T) {
	rows := []row{{service: "checkout"}, {service: "search"}, {service: "batch"}}
	per := map[string][]string{
		"checkout": {"staging", "production"},
		"search":   {"dev", "staging"},
		"batch":    {"production", "dr"},
	}
	got := mergeStages(rows, per)
	if want := []string{"dev", "staging", "production", "dr"}; !slices.Equal(got, want) {
		t.Fatalf("stages %v, want %v", got, want)
	}
}
