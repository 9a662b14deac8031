package tpch

import (
	"testing"
	"time"
)

func TestSameAnswer(t *testing.T) {
	day := time.Date(1995, 3, 15, 0, 0, 0, 0, time.UTC)
	want := [][]any{{int64(1), "AIR", 12.5, day, nil}}
	same := [][]any{{"1", []byte("AIR  "), "12.500000000001", "1995-03-15", nil}}
	if err := SameAnswer(want, same); err != nil {
		t.Errorf("SameAnswer: %v", err)
	}
	for _, got := range [][][]any{
		{},
		{{int64(1), "AIR", 12.5, day}},
		{{int64(2), "AIR", 12.5, day, nil}},
		{{int64(1), "RAIL", 12.5, day, nil}},
		{{int64(1), "AIR", 12.51, day, nil}},
		{{int64(1), "AIR", 12.5, day.AddDate(0, 0, 1), nil}},
		{{int64(1), "AIR", 12.5, day, int64(0)}},
		{{int64(1), "AIR", nil, day, nil}},
	} {
		if err := SameAnswer(want, got); err == nil {
			t.Errorf("SameAnswer(%v, %v) = nil", want, got)
		}
	}
}
