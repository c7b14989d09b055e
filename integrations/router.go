package integrations

import (
	"context"
	"strings"
)

// ConnectorIDPrefix starts the id of every connector (webhook endpoints' ids are bare UUIDs).
const ConnectorIDPrefix = "con_"

// Target sources and senders the Router joins.
type targetSender interface {
	Targets
	Sender
}

// Router gives the engine one view of a tenant's webhook endpoints and connectors: the
// targets of both, and each delivery sent by the one that owns its target.
type Router struct {
	Webhooks   targetSender
	Connectors targetSender
}

// Targets lists the tenant's endpoints, then its connectors.
func (r Router) Targets(ctx context.Context, tenantID string) ([]Target, error) {
	a, err := r.Webhooks.Targets(ctx, tenantID)
	if err != nil || r.Connectors == nil {
		return a, err
	}
	b, err := r.Connectors.Targets(ctx, tenantID)
	return append(a, b...), err
}

func (r Router) owner(id string) Sender {
	if r.Connectors != nil && strings.HasPrefix(id, ConnectorIDPrefix) {
		return r.Connectors
	}
	return r.Webhooks
}

// Send sends through the target's owner.
func (r Router) Send(ctx context.Context, m Message) Result {
	return r.owner(m.EndpointID).Send(ctx, m)
}

// Disable disables the target at its owner.
func (r Router) Disable(ctx context.Context, tenantID, id, reason string) error {
	return r.owner(id).Disable(ctx, tenantID, id, reason)
}
