// sessiongate's passkey buttons: WebAuthn is a browser API, so the pages that
// offer passkeys load this one script (same origin only: their CSP allows no
// other). The ceremonies themselves run on the server (webauthn-rs); this
// turns its JSON options into the browser's binary ones and back.
//
//   <button data-passkey="register" data-name-input="id of a text input">
//   <button data-passkey="authenticate" data-next="/where/to">
//
// Errors go to the element #passkey-error.
'use strict';
(() => {
  const prefix = new URL(document.currentScript.src).pathname.replace(/\/factor\/passkey\.js$/, '');
  const fromB64 = (s) => {
    const b = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
    return Uint8Array.from(b, (c) => c.charCodeAt(0)).buffer;
  };
  const toB64 = (buf) =>
    btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const post = async (path, body) => {
    const r = await fetch(prefix + path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body ?? {}),
    });
    const json = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(json.error || `HTTP ${r.status}`);
    return json;
  };
  const credential = (c) => {
    const r = c.response;
    const out = { id: c.id, rawId: toB64(c.rawId), type: c.type, extensions: {} };
    out.response = r.attestationObject
      ? {
          attestationObject: toB64(r.attestationObject),
          clientDataJSON: toB64(r.clientDataJSON),
          transports: r.getTransports ? r.getTransports() : undefined,
        }
      : {
          authenticatorData: toB64(r.authenticatorData),
          clientDataJSON: toB64(r.clientDataJSON),
          signature: toB64(r.signature),
          userHandle: r.userHandle ? toB64(r.userHandle) : null,
        };
    return out;
  };
  const done = (result) => {
    const codes = result.recovery_codes || [];
    if (codes.length === 0) {
      location.assign(result.redirect);
      return;
    }
    // The first factor's recovery codes: shown here, once.
    const main = document.querySelector('main') || document.body;
    main.replaceChildren();
    const h = document.createElement('h1');
    h.textContent = 'Passkey added';
    const p = document.createElement('p');
    p.textContent =
      'Keep these recovery codes somewhere safe: each signs you in once if you lose your passkey. They are shown only this once.';
    const ol = document.createElement('ol');
    ol.className = 'recovery-codes';
    for (const code of codes) {
      const li = document.createElement('li');
      const c = document.createElement('code');
      c.textContent = code;
      li.append(c);
      ol.append(li);
    }
    const a = document.createElement('a');
    a.className = 'button';
    a.href = result.redirect;
    a.textContent = 'Continue';
    main.append(h, p, ol, a);
  };
  const fail = (e) => {
    const el = document.getElementById('passkey-error');
    if (el) {
      el.textContent = `The passkey did not work: ${e.message}`;
      el.hidden = false;
    }
  };
  const register = async (button) => {
    const options = (await post('/factor/passkey/register')).publicKey;
    options.challenge = fromB64(options.challenge);
    options.user.id = fromB64(options.user.id);
    for (const c of options.excludeCredentials || []) c.id = fromB64(c.id);
    // Discoverable where the authenticator can, so it can sign in alone.
    options.authenticatorSelection = { ...(options.authenticatorSelection || {}), residentKey: 'preferred' };
    const created = await navigator.credentials.create({ publicKey: options });
    const input = document.getElementById(button.dataset.nameInput || '');
    done(await post('/factor/passkey/register/finish', { name: input ? input.value : '', credential: credential(created) }));
  };
  const authenticate = async (button) => {
    const options = (await post('/factor/passkey/auth')).publicKey;
    options.challenge = fromB64(options.challenge);
    for (const c of options.allowCredentials || []) c.id = fromB64(c.id);
    const got = await navigator.credentials.get({ publicKey: options });
    const next = button.dataset.next ? `?next=${encodeURIComponent(button.dataset.next)}` : '';
    done(await post(`/factor/passkey/auth/finish${next}`, { credential: credential(got) }));
  };
  for (const button of document.querySelectorAll('[data-passkey]')) {
    button.addEventListener('click', () => {
      const run = button.dataset.passkey === 'register' ? register : authenticate;
      button.disabled = true;
      run(button)
        .catch(fail)
        .finally(() => {
          button.disabled = false;
        });
    });
  }
})();
