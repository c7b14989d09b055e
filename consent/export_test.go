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
		if err := req.validate(); err != nil {
			return nil, nil, err
		}
		c, err := s.Catalog(ctx, req.TenantID)
		if err != nil {
			return nil, nil, err
		}
		in, err := s.prepare(ctx, req, c)
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
