package consent

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// The fast, hand-ordered canonical form of an event must be byte for byte the general JCS
// form, for any mix of present and absent fields and any strings.
func TestEventCanonicalMatchesGeneralForm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	strs := []string{"", "a", "granted", "ä\u2028\"\\\n\t\x01", "🙂 emoji", "ps_3hkiMNfHDIiM7-l5MhTPyA"}
	pick := func() string { return strs[r.IntN(len(strs))] }
	num := func() int64 { return []int64{0, 1, 1795681819777, -5}[r.IntN(4)] }
	for i := 0; i < 2000; i++ {
		e := &Event{TenantID: pick(), Seq: num(), ID: pick(), Kind: pick(), Pseudonym: pick(), PurposeKey: pick(),
			PurposeVersion: int(num() % 1000), VersionHash: pick(), TextHash: pick(), Decision: pick(), PropertyID: pick(),
			Channel: pick(), Method: pick(), Agent: pick(), Language: pick(), UIHash: pick(), Actor: pick(),
			InteractionID: pick(), Reason: pick(), Ref: pick(), ServerTime: num(), ClientTime: num(), PrevHash: pick()}
		if fast, general := e.Canonical(), e.canonicalMap(); !bytes.Equal(fast, general) {
			t.Fatalf("canonical forms differ:\nfast    %s\ngeneral %s", fast, general)
		}
	}
}

func BenchmarkEventHash(b *testing.B) {
	e := &Event{TenantID: "01a216fa-1492-7865-92a7-0650dfb2c95a", SubjectID: "x", Seq: 3, ID: "01a216fa-1c81-78ba-96be-67732a6da74d",
		Kind: "decision", Pseudonym: "ps_3hkiMNfHDIiM7-l5MhTPyA", PurposeKey: "analytics", PurposeVersion: 1,
		VersionHash: "e565891c5aeb2aee6b16f74d646143070b5224a9da250dc7e11308e793f90f1a",
		TextHash:    "e565891c5aeb2aee6b16f74d646143070b5224a9da250dc7e11308e793f90f1a",
		Decision:    "granted", PropertyID: "01a216fa-1c81-78ba-96be-67732a6da74d", Channel: "web", Method: "banner_custom",
		Language: "fi", Actor: "device", InteractionID: "01a216fa-1c81-78ba-96be-67732a6da74d", ServerTime: 1795681819777,
		PrevHash: "e565891c5aeb2aee6b16f74d646143070b5224a9da250dc7e11308e793f90f1a"}
	for b.Loop() {
		_ = e.ComputeHash()
	}
}

// canonicalMap is the general form of Canonical, built as a map and sorted by JCS: the
// oracle the hand-written encoder is compared with.
func (e *Event) canonicalMap() []byte {
	o := Obj{
		"v": LedgerFormat, "id": e.ID, "kind": e.Kind, "tenant": e.TenantID, "subject": e.Pseudonym,
		"seq": e.Seq, "prev": e.PrevHash, "server_time": e.ServerTime,
	}
	put := func(k, v string) {
		if v != "" {
			o[k] = v
		}
	}
	put("purpose", e.PurposeKey)
	if e.PurposeVersion != 0 {
		o["purpose_version"] = e.PurposeVersion
	}
	put("version_hash", e.VersionHash)
	put("text_hash", e.TextHash)
	put("decision", e.Decision)
	put("property", e.PropertyID)
	put("channel", e.Channel)
	put("method", e.Method)
	put("agent", e.Agent)
	put("language", e.Language)
	put("ui_hash", e.UIHash)
	put("actor", e.Actor)
	put("interaction", e.InteractionID)
	put("reason", e.Reason)
	put("ref", e.Ref)
	if e.ClientTime != 0 {
		o["client_time"] = e.ClientTime
	}
	return Canonical(o)
}
