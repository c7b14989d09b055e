// The registration widget's loader, fetched by the consent widget only on pages that have a
// <div data-lupa-register> (data-property and data-lang optional: the widget's own). It
// shows Lupa's registration form in an iframe served by Lupa, so that the page's own
// scripts (analytics, session replay) cannot read the email address or the password. The
// form tells its height (the iframe follows) and a registration, which becomes the DOM
// event lupa:registered on the element (it bubbles).
const d = document,
  me = d.currentScript,
  base = new URL(me.src).origin,
  frames = [],
  // The device this browser has (the consent cookie's id, under the name the widget says):
  // the form joins its anonymous history to the new account. It travels in the URL's
  // fragment, which is never sent to a server or written to a log.
  name = (me.dataset.cookie || 'lupa_consent') + '=',
  device = (() => {
    try {
      const c = d.cookie.split('; ').find(c => c.startsWith(name))
      return JSON.parse(decodeURIComponent(c.slice(name.length))).id || ''
    } catch (e) {
      return ''
    }
  })()

// A registration through an identity provider ("Continue with …") leaves the page and comes
// back to it with #lupa-registered: the forms say so, and tell lupa:registered.
const back = location.hash == '#lupa-registered'
if (back) history.replaceState(null, '', location.pathname + location.search)

d.querySelectorAll('[data-lupa-register]').forEach(el => {
  if (el.querySelector('iframe')) return
  const f = d.createElement('iframe'),
    q = new URLSearchParams({ property: el.dataset.property || me.dataset.pk, lang: el.dataset.lang || me.dataset.lang, origin: location.origin })
  if (back) q.set('done', 'signin')
  // The page to come back to after a provider, and the device, go in the fragment too.
  f.src = base + '/register?' + q + '#' + new URLSearchParams({ device, page: location.origin + location.pathname + location.search })
  f.title = el.dataset.title || 'Lupa'
  f.style.width = '100%'
  f.style.border = '0'
  f.style.height = '30em'
  el.append(f)
  frames.push([f, el])
})

addEventListener('message', e => {
  const m = e.data,
    hit = e.origin == base && m && frames.find(([f]) => f.contentWindow == e.source)
  if (!hit) return
  if (m.type == 'lupa:resize' && m.height > 0) hit[0].style.height = Math.ceil(m.height) + 'px'
  if (m.type == 'lupa:registered') hit[1].dispatchEvent(new CustomEvent('lupa:registered', { bubbles: true }))
})
