package demo

import (
	"fmt"
	"strings"
	"time"

	sluice "github.com/sluice-gov/sluice"
)

// idCardWeights are the ISO 7064 MOD 11-2 weights 2^(17-i) mod 11 that
// GB 11643-1999 prescribes for the first 17 digits of a resident ID number.
var idCardWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// idCardCheck maps the weighted sum mod 11 to the check character.
const idCardCheck = "10X98765432"

// IDCardCheckDigit computes the check character of an 18-character resident
// ID number (GB 11643-1999, ISO 7064 MOD 11-2) from its first 17 digits. It
// returns '0'-'9' or 'X'.
func IDCardCheckDigit(first17 string) (byte, error) {
	if len(first17) != 17 {
		return 0, sluice.Errorf(sluice.EInvalid, "resident ID check digit: need the first 17 digits, got %d characters", len(first17))
	}
	sum := 0
	for i := 0; i < 17; i++ {
		c := first17[i]
		if c < '0' || c > '9' {
			return 0, sluice.Errorf(sluice.EInvalid, "resident ID check digit: character %d is %q, want a digit", i+1, c)
		}
		sum += int(c-'0') * idCardWeights[i]
	}
	return idCardCheck[sum%11], nil
}

// ValidIDCard reports whether s is a well-formed 18-character resident ID
// number: 17 digits whose characters 7-14 are a real calendar date, and the
// correct check character. Only an upper-case X is accepted, because that is
// what the standard prints and what the demo data contains; callers that take
// user input should upper-case it first.
func ValidIDCard(s string) bool {
	if len(s) != 18 {
		return false
	}
	want, err := IDCardCheckDigit(s[:17])
	if err != nil || s[17] != want {
		return false
	}
	_, ok := idCardBirth(s)
	return ok
}

// idCardBirth returns the birth date encoded in characters 7-14.
func idCardBirth(s string) (time.Time, bool) {
	if len(s) < 14 {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102", s[6:14])
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// idCardMale reports the gender encoded in the 17th character: odd is male.
func idCardMale(s string) bool { return (s[16]-'0')%2 == 1 }

// makeIDCard assembles an ID number from its parts and appends the check
// character. seq is the three-digit order code; its parity carries the gender.
func makeIDCard(area string, birth time.Time, seq int) (string, error) {
	first17 := fmt.Sprintf("%s%s%03d", area, birth.Format("20060102"), seq)
	c, err := IDCardCheckDigit(first17)
	if err != nil {
		return "", fmt.Errorf("demo: building a resident ID from area %q: %w", area, err)
	}
	return first17 + string(c), nil
}

// creditCodeChars is the GB 32100-2015 alphabet: digits and upper-case
// letters without I, O, Z, S and V, which are easily confused with digits.
const creditCodeChars = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// creditCodeWeights are 3^i mod 31 for positions 1-17.
var creditCodeWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

func creditCodeValue(c byte) int { return strings.IndexByte(creditCodeChars, c) }

// CreditCodeCheckChar computes the 18th character of a unified social credit
// code (统一社会信用代码, GB 32100-2015) from its first 17 characters.
func CreditCodeCheckChar(first17 string) (byte, error) {
	if len(first17) != 17 {
		return 0, sluice.Errorf(sluice.EInvalid, "credit code check character: need the first 17 characters, got %d", len(first17))
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := creditCodeValue(first17[i])
		if v < 0 {
			return 0, sluice.Errorf(sluice.EInvalid, "credit code check character: character %d is %q, not in the GB 32100 alphabet (digits and letters except I, O, Z, S, V)", i+1, first17[i])
		}
		sum += v * creditCodeWeights[i]
	}
	return creditCodeChars[(31-sum%31)%31], nil
}

// ValidCreditCode reports whether s is a well-formed unified social credit
// code: 18 characters of the GB 32100 alphabet, an administrative division
// code of six digits in positions 3-8, and the correct check character.
func ValidCreditCode(s string) bool {
	if len(s) != 18 {
		return false
	}
	for i := 2; i < 8; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	want, err := CreditCodeCheckChar(s[:17])
	return err == nil && s[17] == want
}

// orgCodeWeights are the GB 11714-1997 weights of the eight body characters
// of an organisation code, which forms positions 9-17 of a credit code.
var orgCodeWeights = [8]int{3, 7, 9, 10, 5, 8, 4, 2}

// orgCodeCheck computes the ninth character of an organisation code, so that
// generated credit codes are valid at both levels, as real ones are.
func orgCodeCheck(body string) byte {
	sum := 0
	for i := 0; i < 8; i++ {
		c := body[i]
		v := int(c - '0')
		if c >= 'A' && c <= 'Z' {
			v = int(c-'A') + 10
		}
		sum += v * orgCodeWeights[i]
	}
	switch r := 11 - sum%11; r {
	case 10:
		return 'X'
	case 11:
		return '0'
	default:
		return byte('0' + r)
	}
}

// makeCreditCode builds a credit code for an enterprise (registration
// authority 9 = market regulation, entity type 1 = enterprise) registered in
// the given division, from an eight-character organisation code body.
func makeCreditCode(division, orgBody string) (string, error) {
	first17 := "91" + division + orgBody + string(orgCodeCheck(orgBody))
	c, err := CreditCodeCheckChar(first17)
	if err != nil {
		return "", fmt.Errorf("demo: building a credit code in division %q: %w", division, err)
	}
	return first17 + string(c), nil
}
