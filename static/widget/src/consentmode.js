// Google Consent Mode v2.

const TYPES = ['ad_storage', 'ad_user_data', 'ad_personalization', 'analytics_storage', 'functionality_storage', 'personalization_storage']

// grantedTypes lists the Consent Mode types that are granted: a type is granted when at least
// one purpose maps to it and every purpose that maps to it is granted (granted(p)), or when
// only strictly necessary items map to it.
export const grantedTypes = (purposes, necessary, granted) =>
  TYPES.filter(t => {
    const ps = purposes.filter(p => (p.consent_mode || []).includes(t))
    return ps.length ? ps.every(granted) : necessary.some(n => (n.consent_mode || []).includes(t))
  })

// consentUpdate sends gtag('consent', 'update', {…all seven types}): through gtag when the
// page defined it, else by pushing the arguments object to dataLayer as gtag itself does.
export function consentUpdate(granted) {
  const w = window, o = { security_storage: 'granted' }
  TYPES.forEach(t => (o[t] = granted.includes(t) ? 'granted' : 'denied'))
  typeof w.gtag == 'function'
    ? w.gtag('consent', 'update', o)
    : (function () {
        (w.dataLayer = w.dataLayer || []).push(arguments)
      })('consent', 'update', o)
}
