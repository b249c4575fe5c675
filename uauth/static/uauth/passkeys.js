/* uauth passkeys: the only script of uauth's pages, for the passkey buttons (WebAuthn).
   Every element with data-passkey="login|second-factor|register" stays hidden unless this
   browser can use passkeys; everything else on the pages works without JavaScript. */
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !navigator.credentials) { return; }

  function toBytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var text = atob(b64), bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) { bytes[i] = text.charCodeAt(i); }
    return bytes.buffer;
  }
  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer), text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creationOptions(o) {
    o.challenge = toBytes(o.challenge);
    o.user.id = toBytes(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return o;
  }
  function requestOptions(o) {
    o.challenge = toBytes(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return o;
  }
  function credentialJSON(cred) {
    var r = cred.response, out = { id: cred.id, rawId: toB64url(cred.rawId), type: cred.type,
      clientExtensionResults: cred.getClientExtensionResults(), response: {
        clientDataJSON: toB64url(r.clientDataJSON) } };
    if (cred.authenticatorAttachment) { out.authenticatorAttachment = cred.authenticatorAttachment; }
    if (r.attestationObject) {
      out.response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = toB64url(r.authenticatorData);
      out.response.signature = toB64url(r.signature);
      if (r.userHandle) { out.response.userHandle = toB64url(r.userHandle); }
    }
    return out;
  }
  function post(box, url, body) {
    return fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": box.dataset.csrf },
      body: JSON.stringify(body || {}) }).then(function (response) {
        return response.json().then(function (data) {
          if (!response.ok) { throw new Error(data.error || "The passkey did not work."); }
          return data;
        });
      });
  }
  function show(box, message) {
    var el = box.querySelector("[data-passkey-error]");
    if (el) { el.textContent = message; el.hidden = !message; }
  }
  var pending = null;  // the conditional (autofill) request, aborted by the button

  function signIn(box, conditional) {
    if (pending) { pending.abort(); pending = null; }
    var abort = new AbortController();
    if (conditional) { pending = abort; }
    return post(box, box.dataset.options).then(function (options) {
      var request = { publicKey: requestOptions(options), signal: abort.signal };
      if (conditional) { request.mediation = "conditional"; }
      return navigator.credentials.get(request);
    }).then(function (cred) {
      return fetch(box.dataset.verify, { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": box.dataset.csrf },
        body: JSON.stringify(credentialJSON(cred)) });
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) { throw new Error(data.error || "The passkey did not work."); }
        window.location.assign(data.redirect);
      });
    }).catch(function (err) {
      if (err && err.name === "AbortError") { return; }
      show(box, err && err.name === "NotAllowedError" ?
        "The passkey request was cancelled or timed out." : String(err.message || err));
    });
  }

  function register(box) {
    var nameInput = box.querySelector("[data-passkey-name]");
    return post(box, box.dataset.options).then(function (options) {
      return navigator.credentials.create({ publicKey: creationOptions(options) });
    }).then(function (cred) {
      return post(box, box.dataset.verify, {
        name: nameInput ? nameInput.value : "", credential: credentialJSON(cred) });
    }).then(function (data) {
      window.location.assign(data.redirect);
    }).catch(function (err) {
      show(box, err && err.name === "NotAllowedError" ?
        "The passkey request was cancelled or timed out." :
        err && err.name === "InvalidStateError" ? "This passkey is registered already." :
        String(err.message || err));
    });
  }

  document.querySelectorAll("[data-passkey]").forEach(function (box) {
    var kind = box.dataset.passkey, button = box.querySelector("[data-passkey-start]");
    box.hidden = false;
    button.addEventListener("click", function () {
      show(box, "");
      if (kind === "register") { register(box); } else { signIn(box, false); }
    });
    if (kind === "login" && PublicKeyCredential.isConditionalMediationAvailable &&
        document.querySelector("input[autocomplete~=webauthn]")) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (yes) {
        if (yes) { signIn(box, true); }
      });
    }
  });
})();
