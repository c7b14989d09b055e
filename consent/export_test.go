package consent

import (
	"context"
	"time"
)

// Hooks for the black-box tests in consent_test: nothing here is part of the package's API.

// Sabotages that CommitAsOneBatch can apply to one prepared request, each making the SQL of
// that request alone fail inside the batch with an error that is not the database's fault.
const (
	// SabotageDuplicateInteraction gives the request the interaction id of the batch's
	// first request, so its receipt row collides with that one's (a unique violation).
	SabotageDuplicateInteraction = "duplicate_interaction"
	// SabotageDeletedTenant makes the request's new subject belong to a tenant that does
	// not exist, as if the tenant had been deleted meanwhile (a foreign-key violation).
	SabotageDeletedTenant = "deleted_tenant"
)

// CommitAsOneBatch prepares each request as Record does and hands them to the writer as one
// group-committed batch, exactly as the writer's loop does when they arrive together; it
// applies sabotage to request bad first. It returns each request's outcome and error.
func (s *Service) CommitAsOneBatch(ctx context.Context, reqs []*RecordRequest, bad int, sabotage string) ([]*Outcome, []error, error) {
	jobs := make([]*job, len(reqs))
	for i, req := range reqs {
		in, err := s.interactionFor(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		jobs[i] = &job{in: in, enqueued: time.Now(), done: make(chan struct{})}
	}
	switch sabotage {
	case SabotageDuplicateInteraction:
		jobs[bad].in.id = jobs[0].in.id
		jobs[bad].in.pre = nil // plan it again in the writer, with the borrowed id
	case SabotageDeletedTenant:
		jobs[bad].in.newSubject.TenantID = "deleted-tenant"
	}
	s.writer.process(jobs)
	outs := make([]*Outcome, len(jobs))
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		<-j.done
		outs[i], errs[i] = j.out, j.err
	}
	return outs, errs, nil
}

// SweepEvidenceThen selects the subjects the evidence sweep would erase in the tenant, runs
// between, and then hands their erasures to the writer, as SweepEvidence does: between is
// whatever happens in the moment between the two. It returns how many subjects the sweep
// selected and how many of them it erased.
func (s *Service) SweepEvidenceThen(ctx context.Context, tenantID string, between func()) (selected, erased int, err error) {
	c, err := s.Catalog(ctx, tenantID)
	if err != nil {
		return 0, 0, err
	}
	ins, err := s.evidenceEnded(ctx, c)
	if err != nil {
		return 0, 0, err
	}
	between()
	erased, err = s.submitSystem(ctx, ins)
	return len(ins), erased, err
}

// PrepareRecord prepares a request as Record does — the subject found, the decisions
// planned on the chain head read now — and returns the function that hands it to the
// writer: a request that found its subject before something else happened, and is written
// after.
func (s *Service) PrepareRecord(ctx context.Context, req *RecordRequest) (func() (*Outcome, error), error) {
	in, err := s.interactionFor(ctx, req)
	if err != nil {
		return nil, err
	}
	return func() (*Outcome, error) { return s.writer.Submit(ctx, in) }, nil
}

// RewriteExpiriesThen makes one pass of the expiry rewrite over the tenant's purpose, as
// RewriteExpiries does, running between after each batch is read and before it is written.
func (s *Service) RewriteExpiriesThen(ctx context.Context, tenantID, purposeKey string, between func()) (int, error) {
	p, err := s.purpose(s.db.Write.WithContext(ctx), tenantID, purposeKey)
	if err != nil {
		return 0, err
	}
	return s.rewriteExpiries(ctx, p, between)
}

// ReplayTakenKey answers req as the writer answers a request whose Idempotency-Key another
// request took: from the answer stored under the key, read now.
func (s *Service) ReplayTakenKey(ctx context.Context, req *RecordRequest) (*Outcome, error) {
	in, err := s.interactionFor(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.replayAfterConflict(in)
}

// ConfirmOptInThen follows a confirmation link as ConfirmOptIn does, running between after
// the link is checked and before what it confirms is handed to the writer: whatever happens
// in the moment between the two.
func (s *Service) ConfirmOptInThen(ctx context.Context, token string, between func()) (*OptInResult, error) {
	chk, err := s.checkOptIn(ctx, token)
	if err != nil {
		return nil, err
	}
	between()
	return s.confirmOptIn(ctx, chk)
}
