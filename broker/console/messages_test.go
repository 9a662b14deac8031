package console

import "testing"

func TestMessageTablesAgree(t *testing.T) {
	for k := range messages["en"] {
		if messages["zh"][k] == "" {
			t.Errorf("zh lacks %q", k)
		}
	}
	for k := range messages["zh"] {
		if messages["en"][k] == "" {
			t.Errorf("en lacks %q", k)
		}
	}
}
