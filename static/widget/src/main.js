// Lupa consent banner: the entry point. See docs/banner.md for what a site owner does with it.
//
// <script src="https://lupa.example/v1/widget.js" data-property="pk_…" [data-lang="fi"] async>
//
// Flow: mark the start; fetch the property's configuration and load the stylesheet in
// parallel; with the configuration, read the consent cookie, apply the browser's Global
// Privacy Control signal, update Consent Mode, run the allowed blocked scripts and fire
// "ready"; once the stylesheet has loaded too, render (the banner only if a decision is
// needed). Each decision applies at once and is queued for the server.

import './start.js'
import STRINGS from './strings.json'
import { d, h } from './dom.js'
import { readCookie, writeCookie, wipe } from './cookie.js'
import { outbox } from './queue.js'
import { grantedTypes, consentUpdate } from './consentmode.js'
import { activate } from './activate.js'
import { ui } from './ui.js'

// __LUPA_BUILD__, __LUPA_CSS__ and __LUPA_REGISTER__ are set by static/internal/build.
const BUILD = __LUPA_BUILD__, CSS = __LUPA_CSS__, REG = __LUPA_REGISTER__,
  w = window,
  WORD = { g: 'granted', d: 'denied', w: 'withdrawn', o: 'objected', p: 'pending_confirmation' },
  script = d.currentScript || d.querySelector('script[data-property]')

if (!w.lupa && script) {
  const subs = { ready: [], change: [] },
    gpc = navigator.globalPrivacyControl === true
  let cfg, s, P = [], N = [], state, saved, ready, view, wantOpen, box, token, asked

  // current returns the stored decision [letter, version, unix time, fromGPC?] of purpose p
  // while it stands: not a grant of a version older than the purpose's material version, and
  // not older than reask_months. Otherwise the purpose counts as undecided (and is asked).
  // Both come only with consent purposes, and are the server's own rules: its expires_at is
  // the decision time plus the purpose's reask_months in UTC calendar months. An objection
  // to a legitimate interest has neither, and stands until the person changes it.
  const current = p => {
    const e = state && state.p[p.key], t = e && new Date(e[2] * 1e3)
    if (e && !(e[0] == 'g' && e[1] < p.material_version) && !(p.reask_months && t.setUTCMonth(t.getUTCMonth() + p.reask_months) <= Date.now()))
      return e
  }
  const decisions = () => {
    const o = {}
    P.forEach(p => {
      const e = current(p)
      if (e) o[p.key] = WORD[e[0]]
    })
    return o
  }
  // get: true granted (strictly necessary items are always true), false refused, undefined undecided.
  const get = k => {
    if (N.some(n => n.key == k)) return true
    const v = decisions()[k]
    return v && v == 'granted'
  }
  const fire = n => {
    const v = decisions()
    subs[n].forEach(f => {
      try {
        f(v)
      } catch (e) {
        console.error(e)
      }
    })
    d.dispatchEvent(new CustomEvent('lupa:' + n, { detail: v }))
  }

  w.lupa = {
    get,
    decisions,
    open: () => (view ? view.open() : (wantOpen = 1)),
    on(n, f) {
      subs[n] && subs[n].push(f)
      n == 'ready' && ready && f(decisions())
    },
    // identify: the site's signed-in customer, by the access token of its CIAM. Decisions are
    // then the person's, this device joins them, their own decisions (device-level ones
    // made elsewhere too) apply here, and the person-level purposes they have not decided
    // are asked. The token is kept in memory only.
    identify(t) {
      token = t
      return cfg && who()
    },
    // forget: call it when the person signs out on the site. The browser starts afresh: a
    // new anonymous device, asked again, since someone else may use it next. Decisions still
    // queued go first, while they are still the leaving person's; whatever cannot go is
    // dropped, since sent later it would make the next person's device (or decide for them).
    async forget() {
      if (!s) return
      await soon(box.flush())
      d.cookie = (s.cookie_name || 'lupa_consent') + '=; Path=/; Max-Age=0' + (s.cookie_domain ? '; Domain=' + s.cookie_domain : '')
      try {
        localStorage.removeItem('lupa_receipt')
        localStorage.removeItem('lupa_queue')
      } catch (e) {}
      location.reload()
    },
  }

  // apply makes the state effective in the page: the cookie (written only when it changed,
  // so a cookie the server set keeps its lifetime), Consent Mode and the blocked elements.
  // A spec is a list of purpose keys (space or comma separated) that must all be granted;
  // "!key" requires key to be refused (denied, withdrawn or objected), not merely undecided.
  const apply = () => {
    state.g = grantedTypes(P, N, p => (current(p) || [])[0] == 'g')
    const v = JSON.stringify(state)
    if (v != saved) writeCookie(s, (saved = v))
    consentUpdate(state.g)
    activate(spec => spec.split(/[\s,]+/).every(k => (k[0] == '!' ? get(k.slice(1)) === false : get(k))))
  }

  // decide records one interaction: items are [purpose, on] pairs. A refusal is "objected" on
  // legitimate interest, "withdrawn" when it turns off a standing grant, else "denied". It
  // returns the refused purposes that this browser had granted, lapsed grants too (a new
  // material version, the re-ask interval): their scripts no longer run, but what they stored
  // is still here. gone.r says a grant stood on this page view, so its scripts may be running.
  const decide = (method, items, gpcConfirmed) => {
    const t = Math.floor(Date.now() / 1e3), gone = [],
      body = { method, language: cfg.language, ui_hash: cfg.ui_hash, client_time: new Date().toISOString(), decisions: [] }
    if (gpcConfirmed) body.gpc_confirmed = true
    for (const [p, on] of items) {
      const was = (current(p) || [])[0] == 'g',
        dec = on ? 'granted' : p.legal_basis == 'legitimate_interest' ? 'objected' : was ? 'withdrawn' : 'denied'
      if (!on && (state.p[p.key] || [])[0] == 'g') gone.push(p), (gone.r = gone.r || was)
      state.p[p.key] = method == 'gpc_signal' ? [dec[0], p.version, t, 1] : [dec[0], p.version, t]
      body.decisions.push({ purpose: p.key, version: p.version, decision: dec, text_hash: p.text_hash })
    }
    state.t = t
    box.add(cfg.base + '/v1/consents?property=' + encodeURIComponent(cfg.pk), body)
    apply()
    return gone
  }

  // soon waits for a round of sending, at most 2 s: a reload must not wait on a slow network.
  const soon = sent => Promise.race([sent, new Promise(r => setTimeout(r, 2e3))])

  // choose is a decision made in the interface. Refusing a purpose this browser had granted
  // deletes the purpose's storage; a withdrawal also reloads the page (once the request is
  // sent or safely queued) so running scripts stop. The GPC signal (signal) deletes nothing.
  const choose = async (method, items) => {
    const gone = decide(method, items, gpc && items.some(([p, on]) => on && p.gpc_opt_out))
    view.done()
    fire('change')
    const sent = box.flush()
    wipe(gone, s)
    if (gone.r) {
      await soon(sent)
      location.reload()
    }
  }

  // signal applies the browser's Global Privacy Control: it refuses the opt-out purposes that
  // have no standing decision (person-level ones too, once the person is identified), else
  // applies the state as it is.
  const signal = () => {
    const sig = P.filter(p => gpc && p.gpc_opt_out && !current(p))
    sig[0] ? decide('gpc_signal', sig.map(p => [p, 0])) : apply()
  }

  const init = async () => {
    const base = new URL(script.src).origin,
      pk = script.dataset.property,
      lang = (script.dataset.lang || d.documentElement.lang.split('-')[0] || navigator.language.split('-')[0] || '').toLowerCase()
    if (!pk) return console.warn('Lupa: the widget script needs data-property="pk_…"')
    const css = new Promise(r => {
      const l = h('link', { rel: 'stylesheet', href: base + '/v1/static/' + CSS })
      l.onload = l.onerror = r
      d.head.append(l)
    })
    let r, c
    try {
      r = await fetch(base + '/v1/properties/' + encodeURIComponent(pk) + '/config?lang=' + encodeURIComponent(lang) + '&build=' + BUILD)
      c = await r.json()
    } catch (e) {}
    if (!(r && r.ok && c))
      return console.warn('Lupa: property ' + pk + ' ' +
        (!r ? 'settings could not be loaded' : r.status == 404 ? 'is unknown' : r.status == 403 ? 'does not allow this origin, ' + location.origin : 'settings could not be loaded') +
        (r ? ' (' + r.status + ')' : '') + (c && c.detail ? ': ' + c.detail : ''))

    cfg = c
    cfg.base = base
    cfg.pk = pk
    s = c.settings || {}
    P = c.purposes || []
    N = c.necessary || []
    state = Object.assign({ v: 1, id: '', t: 0, p: {}, g: [], r: '' }, readCookie(s))
    // The registration form is a chunk of its own, fetched only by pages with a place for it.
    // It reads the device from the consent cookie, whose name the settings may change.
    const reg = () =>
      d.querySelector('[data-lupa-register]') &&
      d.head.append(h('script', { src: base + '/v1/static/' + REG, 'data-pk': pk, 'data-lang': lang, 'data-cookie': s.cookie_name || '' }))
    d.readyState == 'loading' ? d.addEventListener('DOMContentLoaded', reg) : reg()
    saved = JSON.stringify(state)
    box = outbox(() => (token ? '' : state.id), (j, more) => {
      state.id = j.device_id || state.id
      state.r = j.interaction_id || state.r
      try {
        localStorage.lupa_receipt = j.receipt
      } catch (e) {}
      // If the server set the cookie itself for this interaction (Lupa on the site's own
      // domain), keep that one: a cookie set by script may be capped to 7 days (Safari).
      saved = JSON.stringify(state)
      if (more || (readCookie(s) || {}).r != state.r) writeCookie(s, saved)
    }, () => token, b => {
      // A grant the server refused (its text replaced meanwhile, a privacy signal the page
      // did not see) is not kept: the page would go on acting on a consent nobody can show.
      // The purpose is asked again; scripts already running stop with the next page.
      for (const x of b.decisions) x.decision == 'granted' && (state.p[x.purpose] || [])[1] == x.version && delete state.p[x.purpose]
      apply()
      fire('change')
    })

    // Global Privacy Control, before any script, callback or event sees the state.
    signal()
    ready = 1
    fire('ready')
    box.flush()
    w.addEventListener('online', box.flush)

    await css
    render()
    wantOpen && view.open()
    // Unless the page identified its customer in its lupa:ready handler, which asked already.
    token && asked != token && who()
  }

  const render = () => {
    const old = d.getElementById('lupa')
    old && old.remove()
    view = ui({ cfg, T: Object.assign({}, STRINGS.en, STRINGS[cfg.language], cfg.strings), P, gpc, current, choose })
  }

  // who reads the signed-in person's decisions and asks what they have not decided.
  const who = async () => {
    asked = token
    const H = { Authorization: 'Bearer ' + token }
    if (state.id) H['Lupa-Device-Id'] = state.id
    const r = await fetch(cfg.base + '/v1/consents?property=' + encodeURIComponent(cfg.pk), { headers: H }).catch(e => 0),
      j = r && r.ok && (await r.json()),
      all = P.concat(cfg.person_purposes || [])
    if (!j) return console.warn('Lupa: the customer token was not accepted' + (r ? ' (' + r.status + ')' : ''))
    // The grants that ran their scripts on this page: one the person's own state does not
    // hold (withdrawn on another device, or never theirs) is cleaned up as a withdrawal here.
    const ran = P.filter(p => (current(p) || [])[0] == 'g')
    P = all.filter((p, i) => all.findIndex(q => q.key == p.key) == i)
    for (const x of j.state) {
      const l = Object.keys(WORD).find(k => WORD[k] == x.state)
      l && x.decided_at ? (state.p[x.purpose] = [l, x.version, (Date.parse(x.decided_at) / 1e3) | 0]) : delete state.p[x.purpose]
    }
    // The signal refuses the person-level opt-out purposes (sharing, selling) the person has
    // not decided, as it did the device's; sent with the token, the refusals are the person's.
    signal()
    const sent = box.flush(), gone = ran.filter(p => (state.p[p.key] || [])[0] != 'g')
    if (gone[0]) {
      wipe(gone, s)
      await soon(sent)
      return location.reload()
    }
    // Before the first render (the stylesheet still loading) that render shows this state;
    // rendering here too would replace the banner under the visitor's pointer.
    view && render()
    fire('change')
  }
  init()
}
