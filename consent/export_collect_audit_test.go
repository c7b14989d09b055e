package consent

// Hooks for the collection audit's tests (shutdown_collect_audit_test.go).

// Queued is how many interactions wait in the writer's queue.
func (w *Writer) Queued() int { return len(w.in) }

// Closing reports whether Close has stopped the writer taking work.
func (w *Writer) Closing() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.closed
}
