// Blocked scripts and iframes.
//
//   <script type="text/plain" data-lupa-purpose="marketing" src="…"></script>
//   <iframe data-lupa-purpose="video" data-src="…"></iframe>
//
// run only once allowed(spec) says so. Each script is replaced by a new <script> with the same
// attributes (except type and data-lupa-*; the nonce is copied through the nonce property, as
// the attribute reads empty once the page's CSP hid it). Scripts run in document order: the
// chain waits for each external script to load (or fail) before the next one, also across
// several activate() calls. An element runs at most once.

import { d } from './dom.js'

let chain = Promise.resolve()

export function activate(allowed) {
  d.querySelectorAll('script[type="text/plain"][data-lupa-purpose],iframe[data-lupa-purpose]').forEach(el => {
    if (el.l || !allowed(el.dataset.lupaPurpose)) return
    el.l = 1
    if (el.tagName == 'IFRAME') return (el.src = el.dataset.src)
    chain = chain.then(
      () =>
        new Promise(done => {
          const n = d.createElement('script')
          for (const a of el.attributes) /^(type$|data-lupa-)/.test(a.name) || n.setAttribute(a.name, a.value)
          n.nonce = el.nonce
          if (el.src) {
            n.async = false
            n.onload = n.onerror = done
          } else n.text = el.text
          el.replaceWith(n)
          el.src || done()
        })
    )
  })
}
