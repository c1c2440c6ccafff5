// Passkeys on the pages (WebAuthn). A form with data-passkey="create" or "get" asks the
// server (data-options, posting the form's own fields, the CSRF token among them) for the
// options, lets the browser make or use a passkey, puts its answer (WebAuthn's JSON) in the
// form's "credential" field (and the challenge_token, if given) and submits the form.
"use strict";

// htmx runs a page's scripts again each time it swaps one in: listen once.
if (!window.passkeysListening) {
  window.passkeysListening = true;
  document.addEventListener("submit", answer);
}

async function answer(event) {
  const form = event.target;
  const how = form.dataset.passkey;
  if (!how || form.elements.credential.value) return; // not ours, or answered already
  event.preventDefault();
  const said = form.querySelector("[data-passkey-error]");
  try {
    if (!window.PublicKeyCredential) throw new Error("This browser has no passkeys.");
    const reply = await fetch(form.dataset.options, { method: "POST", body: new FormData(form) });
    const body = await reply.json();
    if (!reply.ok) throw new Error(body.detail || "The server refused.");
    const options = body.options || body;
    if (body.challenge_token) form.elements.challenge_token.value = body.challenge_token;
    const credential =
      how === "create"
        ? await navigator.credentials.create({
            publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
          })
        : await navigator.credentials.get({
            publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
          });
    form.elements.credential.value = JSON.stringify(credential.toJSON());
    form.submit();
  } catch (error) {
    if (said) {
      said.textContent = error.message;
      said.hidden = false;
    }
  }
}
