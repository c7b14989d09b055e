package consent

import (
	"regexp"
	"strings"
	"testing"
)

// validCode takes what the patterns it replaced took (an agent of up to 100 characters, an
// erasure's reason of up to 200), and nothing else.
func TestValidCodeIsThePattern(t *testing.T) {
	for _, max := range []int{maxAgent, maxErasureReason} {
		re := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,` + itoa(max-1) + `}$`)
		for _, s := range []string{"", "a", "agent-17", "dsr:01J9Z", "A_b.c:d-e", "-agent", "_x", ".x", ":x",
			"agent 17", "anna@example.com", "ä", "agentä", "x\n", "x/y", strings.Repeat("a", max),
			strings.Repeat("a", max+1), "a" + strings.Repeat("-", max-1), "a" + strings.Repeat("-", max)} {
			if got, want := validCode(s, max), re.MatchString(s); got != want {
				t.Errorf("validCode(%q, %d) = %v, the pattern says %v", s, max, got, want)
			}
		}
	}
}
