// Small DOM helpers. Nothing here ever parses a string as HTML: tenant text (titles,
// descriptions, names) always becomes a Text node, and URLs from configuration become links
// only when they are http(s).

export const d = document

// h creates an element. attrs are set with setAttribute (null, undefined and false are
// skipped, true sets an empty attribute); kids may be nodes, strings (appended as text) or
// nested arrays of them; falsy kids are skipped.
export function h(tag, attrs, ...kids) {
  const e = d.createElement(tag)
  for (const k in attrs) {
    const v = attrs[k]
    if (v != null && v !== false) e.setAttribute(k, v === true ? '' : v)
  }
  e.append(...kids.flat(3).filter(Boolean))
  return e
}

// link returns an anchor opening in a new tab for an http(s) URL, else the bare text (so a
// "javascript:" URL in configuration can never run).
export const link = (url, text) =>
  /^https?:\/\//i.test(url) ? h('a', { href: url, target: '_blank', rel: 'noopener' }, text) : text

// focusables lists the keyboard-focusable elements inside el that are rendered (not inside a
// closed <details> or a hidden part).
export const focusables = el =>
  [...el.querySelectorAll('a[href],button,input,summary')].filter(e => e.getClientRects().length)
