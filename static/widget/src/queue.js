// The outbox of decisions. Every decision is applied in the page at once and queued here
// (persisted in localStorage "lupa_queue"); the queue is sent in order, one request at a
// time, each with its own Idempotency-Key so that a resend is never recorded twice.
// A network error, 5xx, 429 or an idempotency key still in progress (409) keeps the item
// for a later try (a later page view, or the "online" event); any other answer removes it,
// and a refusal is told to refused(body).

const KEY = 'lupa_queue'

// hex returns 128 random bits as 32 hex digits.
const hex = () => crypto.getRandomValues(new Uint8Array(16)).reduce((s, b) => s + (b | 256).toString(16).slice(1), '')

// outbox returns {add, flush}. deviceId() gives the device id known now; recorded(answer,
// more) is called with each 201 answer (more: further items wait behind it).
export const outbox = (deviceId, recorded, token, refused) => {
  let q = [], busy
  try {
    q = JSON.parse(localStorage[KEY]) || []
  } catch (e) {}
  const save = () => {
    try {
      q.length ? (localStorage[KEY] = JSON.stringify(q)) : localStorage.removeItem(KEY)
    } catch (e) {}
  }
  const send = async () => {
    try {
      while (q[0]) {
        const it = q[0]
        // The body is fixed at the first attempt, so a resend with the same key is the same
        // request. A first decision made before any device id existed is sent without one:
        // the server creates the device then.
        if (!it.s) {
          it.s = 1
          if (deviceId()) it.b.identifier = { kind: 'device', value: deviceId() }
          save()
        }
        let r, j
        try {
          r = await fetch(it.u, {
            method: 'POST', keepalive: true, credentials: 'include', body: JSON.stringify(it.b),
            headers: Object.assign({ 'Content-Type': 'application/json', 'Idempotency-Key': it.k }, token() && { Authorization: 'Bearer ' + token() }),
          })
          j = await r.json().catch(() => ({}))
        } catch (e) {
          return
        }
        if (r.status > 499 || r.status == 429 || (r.status == 409 && /idempotency/.test(j.type))) return
        r.ok
          ? recorded(j, q[1])
          : (console.warn('Lupa: a decision was not recorded (' + r.status + ')' + (j.detail ? ': ' + j.detail : ''), j.errors || ''), refused(it.b))
        q.shift()
        save()
      }
    } finally {
      busy = 0
    }
  }
  return {
    add(url, body) {
      q.push({ u: url, k: hex(), b: body })
      save()
    },
    // flush starts sending (unless already under way) and returns a promise of the end of
    // this round, or a falsy value when nothing new was started.
    flush: () => busy || (q[0] && (busy = send())),
  }
}
