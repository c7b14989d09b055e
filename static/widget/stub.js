// Lupa's Consent Mode stub. A site pastes the minified form (static.StubJS, shown in
// docs/banner.md) inline in <head>, before gtag.js or Google Tag Manager and before any
// gtag('config'). It defines dataLayer and gtag if the page has not, reads the Consent Mode
// types that the visitor's last decision granted from the lupa_consent cookie ("g"), and sets
// them as the defaults: every other type denied, security_storage granted, and a 500 ms wait
// for the widget's update. Plain ES5 on purpose: it runs before anything else.
(function (w) {
  var l = (w.dataLayer = w.dataLayer || []),
    g = (w.gtag = w.gtag || function () { l.push(arguments) }),
    o = { security_storage: 'granted', wait_for_update: 500 },
    c = []
  try {
    c = JSON.parse(decodeURIComponent(document.cookie.match(/(^|; )lupa_consent=([^;]*)/)[2])).g || []
  } catch (e) {}
  'ad_storage ad_user_data ad_personalization analytics_storage functionality_storage personalization_storage'
    .split(' ')
    .forEach(function (t) { o[t] = c.indexOf(t) < 0 ? 'denied' : 'granted' })
  g('consent', 'default', o)
})(window)
