// The interface: the first layer (bar or dialog), the settings layer (a modal dialog), the
// Global Privacy Control confirmation and the persistent "privacy settings" button.
//
// DOM hooks (stable, for site styling and tests): root #lupa; first layer #lupa-banner with
// title #lupa-t; settings layer #lupa-settings; persistent button #lupa-open; buttons
// [data-lupa-action=accept|reject|settings|save|close|confirm|cancel]; switches
// input[data-lupa-purpose-switch=<purpose key>].

import { d, h, link, focusables } from './dom.js'

// c: {cfg, T (strings), P (purposes), gpc, current(p), choose(method, [[purpose, on]…])}
export function ui(c) {
  const { cfg, T, P, gpc, current } = c,
    s = cfg.settings || {},
    ctl = cfg.controller || {},
    policy = s.privacy_policy_url || ctl.privacy_policy_url,
    de = d.documentElement,
    root = h('div', { id: 'lupa', class: 'lupa', lang: cfg.language })
  let banner, dlg, opener, undo

  // Theme: only custom properties named --lupa-*, on the root (never a style attribute in markup).
  for (const k in s.theme) k.startsWith('--lupa-') && root.style.setProperty(k, s.theme[k])

  const btn = (a, text, cls) => h('button', { type: 'button', class: cls, 'data-lupa-action': a }, text)
  const buttons = (...as) => h('div', { class: 'lupa-btns' }, as.map(a => btn(a, T[a])))
  const titles = ps => ps.map(p => p.title).join(', ')
  // The purposes that the browser's GPC signal refused (and no explicit choice has replaced).
  const note = () => {
    const ps = P.filter(p => gpc && (current(p) || [])[3])
    return ps.length && h('p', { class: 'lupa-n' }, T.gpc.replace('{p}', titles(ps)))
  }
  const block = (p, id, sw) =>
    h('div', { class: 'lupa-p' },
      sw
        ? h('label', { class: 'lupa-ph' }, h('span', { lang: p.lang }, p.title),
            h('input', { type: 'checkbox', role: 'switch', 'data-lupa-purpose-switch': p.key, 'aria-describedby': id,
              checked: (current(p) || [])[0] == 'g' }))
        : h('div', { class: 'lupa-ph' }, h('span', { lang: p.lang }, p.title), h('span', {}, T.always)),
      h('p', { id, lang: p.lang }, p.description),
      p.legal_basis == 'legitimate_interest' && h('p', {}, T.li),
      ((p.vendors || [])[0] || (p.storage || [])[0] || p.policy_url) &&
        h('details', {}, h('summary', {}, T.more),
          (p.vendors || [])[0] && [h('p', { class: 'lupa-h' }, T.vendors),
            h('ul', {}, p.vendors.map(v => h('li', {}, link(v.privacy_policy_url, v.legal_name || v.name))))],
          (p.storage || [])[0] && [h('p', { class: 'lupa-h' }, T.storage),
            h('ul', {}, p.storage.map(x => h('li', {}, x.name + ' – ' + [T[x.kind] || x.kind, x.duration].filter(Boolean).join(', '))))],
          p.policy_url && h('p', {}, link(p.policy_url, T.policy))))

  // The first layer, when some purpose needs a decision. Its title comes from configuration
  // (the controller's name) and is what the Element Timing benchmark watches.
  if (P.some(p => !current(p))) {
    const dialog = s.position == 'dialog'
    banner = h('section', { id: 'lupa-banner', class: 'lupa-b lupa-' + (dialog ? 'dlg' : 'bar'),
        role: dialog ? 'dialog' : 'region', 'aria-label': T.banner },
      h('div', { class: 'lupa-l' },
        /^https?:\/\//i.test(s.logo_url) && h('img', { class: 'lupa-logo', src: s.logo_url, alt: '' }),
        h('h2', { id: 'lupa-t', elementtiming: 'lupa-title' }, ctl.name || T.banner),
        h('p', {}, T.intro),
        note(),
        policy && h('p', {}, link(policy, T.policy)),
        buttons('accept', 'reject', 'settings')))
    root.append(banner)
  }
  if (s.control != 'hidden')
    root.append(h('button', { type: 'button', id: 'lupa-open', class: 'lupa-c lupa-' + (s.control == 'left' ? 'left' : 'right'),
      'data-lupa-action': 'settings' }, T.title))
  // While a decision is needed the root comes first in the document, so that keyboard and
  // screen reader users meet the banner before the page; otherwise last.
  d.body[banner ? 'prepend' : 'append'](root)
  // Keep the page's focused element from hiding under the bar (WCAG 2.4.11).
  if (banner && s.position != 'dialog') de.style.scrollPaddingBottom = banner.offsetHeight + 'px'

  const open = () => {
    if (dlg) return
    opener = d.activeElement
    dlg = h('div', { class: 'lupa-o' },
      h('div', { id: 'lupa-settings', class: 'lupa-m', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'lupa-st' },
        h('div', { class: 'lupa-l' },
          h('div', { class: 'lupa-ph' }, h('h2', { id: 'lupa-st' }, T.title), btn('close', T.close, 'lupa-x')),
          h('p', {}, T.lead),
          note(),
          P.map((p, i) => block(p, 'lupa-d' + i, 1)),
          (cfg.necessary || []).map((p, i) => block(p, 'lupa-n' + i)),
          h('p', {}, T.controller + ': ' + [ctl.name, ctl.address].filter(Boolean).join(', '),
            ctl.contact_email && [', ', h('a', { href: 'mailto:' + ctl.contact_email }, ctl.contact_email)]),
          policy && h('p', {}, link(policy, T.policy)),
          buttons('accept', 'reject', 'save'))))
    root.append(dlg)
    focusables(dlg)[0].focus()
  }
  // back returns focus to o if it is still there, else to the persistent button.
  const back = o => (o = o && o.isConnected && o != d.body ? o : d.getElementById('lupa-open')) && o.focus()
  const close = () => {
    if (dlg) {
      dlg.remove()
      dlg = 0
      back(opener)
    }
  }
  // ask shows, in place of the layer's content, the confirmation that Accept all overrides the
  // browser's GPC signal for the purposes ps; Cancel puts the layer back without deciding.
  const ask = (box, ps) => {
    const kids = [...box.children],
      q = h('div', { class: 'lupa-l' }, h('p', { class: 'lupa-n', tabindex: -1 }, T.ask.replace('{p}', titles(ps))),
        h('div', { class: 'lupa-btns' }, btn('confirm', T.allow), btn('cancel', T.cancel)))
    kids.forEach(k => (k.hidden = true))
    box.append(q)
    q.firstChild.focus()
    undo = () => {
      q.remove()
      kids.forEach(k => (k.hidden = false))
      box.querySelector('[data-lupa-action=accept]').focus()
    }
  }

  root.addEventListener('click', e => {
    const b = e.target.closest('[data-lupa-action]'),
      a = b && b.dataset.lupaAction,
      on = {},
      // Accept all on a GPC browser asks first for the signal's purposes not yet granted.
      sig = P.filter(p => gpc && p.gpc_opt_out && (current(p) || [])[0] != 'g')
    if (!a) return
    if (a == 'settings') open()
    else if (a == 'close') close()
    else if (a == 'cancel') undo()
    else if (a == 'accept' && sig[0]) ask(b.closest('.lupa-l'), sig)
    else if (a == 'reject') c.choose('banner_reject_all', P.map(p => [p, 0]))
    else if (a == 'save') {
      dlg.querySelectorAll('[data-lupa-purpose-switch]').forEach(i => (on[i.dataset.lupaPurposeSwitch] = i.checked))
      c.choose('banner_custom', P.map(p => [p, on[p.key]]))
    } else c.choose('banner_accept_all', P.map(p => [p, 1]))
  })
  // The settings layer: Escape closes it without deciding; Tab and Shift+Tab cycle inside it.
  d.addEventListener('keydown', e => {
    if (!dlg) return
    if (e.key == 'Escape') close()
    if (e.key == 'Tab') {
      const f = focusables(dlg), i = f.indexOf(d.activeElement)
      if (e.shiftKey ? i < 1 : i < 0 || i == f.length - 1) {
        e.preventDefault()
        f[e.shiftKey ? f.length - 1 : 0].focus()
      }
    }
  })

  return {
    open,
    // done removes the first layer and closes the settings layer after a decision.
    done() {
      if (banner) {
        const f = banner.contains(d.activeElement)
        banner.remove()
        banner = 0
        de.style.scrollPaddingBottom = ''
        f && back()
      }
      close()
    },
  }
}
