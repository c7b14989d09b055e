// The first-party consent cookie and the clean-up of a withdrawn purpose's storage.
import { d } from './dom.js'

const NAME = 'lupa_consent'

// readCookie returns the parsed consent cookie, or undefined when there is none (or it is
// not ours).
export const readCookie = s => {
  const n = (s.cookie_name || NAME) + '='
  try {
    return JSON.parse(decodeURIComponent(d.cookie.split('; ').find(c => c.startsWith(n)).slice(n.length)))
  } catch (e) {}
}

// writeCookie stores the JSON text v as the consent cookie: SameSite=Lax, Secure on https,
// Domain only when configured (else host-only), for cookie_days days.
export const writeCookie = (s, v) => {
  d.cookie =
    (s.cookie_name || NAME) + '=' + encodeURIComponent(v) + '; Path=/; Max-Age=' + 86400 * (s.cookie_days || 365) +
    '; SameSite=Lax' + (s.cookie_domain ? '; Domain=' + s.cookie_domain : '') +
    (location.protocol == 'https:' ? '; Secure' : '')
}

// wipe deletes the first-party cookies, localStorage and sessionStorage items that the
// purposes' inventories list. A name ending in "*" matches by prefix (e.g. "_ga_*"). A cookie
// is expired for every domain it could have been set on: host-only, the host and each parent
// domain, the configured cookie_domain and the item's own domain. sessionStorage outlives the
// reload that follows a withdrawal (it lasts as long as the tab), so it is wiped too. Only the
// store an item names is touched: reading one the browser blocks throws, and must not keep
// the other kinds from being deleted.
export const wipe = (ps, s) => {
  const parts = location.hostname.split('.'), doms = ['', s.cookie_domain]
  for (let i = 0; i < parts.length - 1; i++) doms.push('.' + parts.slice(i).join('.'))
  for (const p of ps)
    for (const it of p.storage || []) {
      const n = it.name || '',
        match = k => (n.endsWith('*') ? k.startsWith(n.slice(0, -1)) : k == n)
      try {
        if (it.kind == 'cookie')
          d.cookie.split('; ').map(c => c.split('=')[0]).filter(match).forEach(k =>
            doms.concat(it.domain).forEach(x => (d.cookie = k + '=; Path=/; Max-Age=0' + (x ? '; Domain=' + x : ''))))
        const st = it.kind == 'local_storage' ? localStorage : it.kind == 'session_storage' && sessionStorage
        if (st) Object.keys(st).filter(match).forEach(k => st.removeItem(k))
      } catch (e) {}
    }
}
