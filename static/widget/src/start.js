// The first statement of the bundle (this module is imported first and has no imports):
// benchmarks measure the widget from this mark.
performance.mark('lupa:start')
