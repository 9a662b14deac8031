package demo

import (
	"testing"
	"time"
)

func TestIDCardCheckDigit(t *testing.T) {
	tests := []struct {
		first17 string
		want    byte
		wantErr bool
	}{
		{"11010519491231002", 'X', false}, // the example printed in GB 11643-1999
		{"44052418800101001", '4', false},
		{"63010219800101001", '9', false},
		{"1101051949123100", 0, true},   // too short
		{"110105194912310020", 0, true}, // too long
		{"11010519491231A02", 0, true},  // a letter
	}
	for _, tt := range tests {
		t.Run(tt.first17, func(t *testing.T) {
			got, err := IDCardCheckDigit(tt.first17)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("check digit = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidIDCard(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"11010519491231002X", true},
		{"440524188001010014", true},
		{"630102198001010019", true},
		{"110105194912310021", false}, // wrong check digit
		{"11010519491231002x", false}, // lower-case x is not what the standard prints
		{"110105194902300028", false}, // 30 February
		{"11010519491231002", false},  // 17 characters
		{"", false},
		{"1101051949123100XX", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := ValidIDCard(tt.id); got != tt.want {
				t.Fatalf("ValidIDCard(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

func TestMakeIDCard(t *testing.T) {
	birth := time.Date(1949, 12, 31, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		area string
		seq  int
		want string
		male bool
	}{
		{"110105", 2, "11010519491231002X", false},
		{"630122", 1, "", true},
		{"630104", 998, "", false},
	}
	for _, tt := range tests {
		id, err := makeIDCard(tt.area, birth, tt.seq)
		if err != nil {
			t.Fatal(err)
		}
		if tt.want != "" && id != tt.want {
			t.Errorf("makeIDCard = %s, want %s", id, tt.want)
		}
		if !ValidIDCard(id) || idCardMale(id) != tt.male || id[:6] != tt.area {
			t.Errorf("makeIDCard(%s, %d) = %s: invalid or wrong gender/area", tt.area, tt.seq, id)
		}
		if b, _ := idCardBirth(id); !b.Equal(birth) {
			t.Errorf("birth of %s = %v, want %v", id, b, birth)
		}
	}
	if _, err := makeIDCard("63A102", birth, 1); err == nil {
		t.Error("an area code with a letter gave no error")
	}
}

func TestCreditCodeCheckChar(t *testing.T) {
	tests := []struct {
		first17 string
		want    byte
		wantErr bool
	}{
		{"91350100M000100Y4", '3', false}, // the example of GB 32100-2015
		{"91110000600037341", 'L', false},
		{"9135010", 0, true},            // too short
		{"91350100M000100I4", 0, true},  // I is not in the alphabet
		{"91350100m000100Y4", 0, true},  // lower case
		{"91350100M000100Y43", 0, true}, // 18 characters
	}
	for _, tt := range tests {
		t.Run(tt.first17, func(t *testing.T) {
			got, err := CreditCodeCheckChar(tt.first17)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("check character = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidCreditCode(t *testing.T) {
	tests := []struct {
		code string
		want bool
	}{
		{"91350100M000100Y43", true},
		{"91110000600037341L", true},
		{"91350100M000100Y44", false}, // wrong check character
		{"91350100M000100Y4", false},  // 17 characters
		{"913501O0M000100Y43", false}, // O in the division code
		{"91350100M000100S43", false}, // S is excluded from the alphabet
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			if got := ValidCreditCode(tt.code); got != tt.want {
				t.Fatalf("ValidCreditCode(%q) = %v, want %v", tt.code, got, tt.want)
			}
		})
	}
}

func TestOrgCodeCheck(t *testing.T) {
	tests := []struct {
		body string
		want byte
	}{
		{"M000100Y", '4'}, // positions 9-17 of the GB 32100 example
		{"60003734", '1'},
	}
	for _, tt := range tests {
		if got := orgCodeCheck(tt.body); got != tt.want {
			t.Errorf("orgCodeCheck(%s) = %q, want %q", tt.body, got, tt.want)
		}
	}
	code, err := makeCreditCode("630102", "M000100Y")
	if err != nil || !ValidCreditCode(code) || code[:8] != "91630102" || code[16] != '4' {
		t.Errorf("makeCreditCode = %q, %v", code, err)
	}
}
