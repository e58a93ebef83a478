// The account's security page: sign in (password, second step, passkey),
// add, rename and remove passkeys, turn TOTP on and off, new recovery
// codes, sign out. Every action is an explicit click on a same-origin API
// route with the session's cookies; a GET of the page changes nothing.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const main = document.getElementById("security");
  const outcome = document.getElementById("outcome");
  const $ = (id) => document.getElementById(id);
  const show = (text, failed) => {
    outcome.textContent = text;
    outcome.className = failed ? "failed" : "done";
    outcome.hidden = false;
  };
  const call = async (method, path, body) => {
    const init = { method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const why = answer.code === "reauth_required" ? main.dataset.reauth : (answer.message || response.status);
      throw new Error(why);
    }
    return answer;
  };
  const guarded = (action) => async (event) => {
    if (event) event.preventDefault();
    try {
      await action(event);
    } catch (error) {
      show(`${main.dataset.failed} (${error.message})`, true);
    }
  };
  const fields = (form) => Object.fromEntries(new FormData(form).entries());
  const reload = () => window.location.reload();
  // The browser's own JSON forms of WebAuthn options and answers.
  const create = async (options) => {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
    return (await navigator.credentials.create({ publicKey })).toJSON();
  };
  const get = async (options) => {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
    return (await navigator.credentials.get({ publicKey })).toJSON();
  };
  let mfaToken = null;

  const passwordForm = $("password-form");
  if (passwordForm) {
    passwordForm.addEventListener("submit", guarded(async () => {
      const answer = await call("POST", "/user/login", fields(passwordForm));
      if (answer.mfa_required) {
        mfaToken = answer.mfa_token;
        $("sign-in").hidden = true;
        $("second-step").hidden = false;
        $("passkey-second-step").hidden = !answer.methods.includes("passkey");
        $("code-form").hidden = !answer.methods.includes("totp") && !answer.methods.includes("recovery_code");
        return;
      }
      reload();
    }));
    $("passkey-sign-in").addEventListener("click", guarded(async () => {
      const start = await call("POST", "/user/passkeys/login/start");
      const credential = await get(start.options);
      await call("POST", "/user/passkeys/login/finish", { ceremony: start.ceremony, credential });
      reload();
    }));
    $("code-form").addEventListener("submit", guarded(async () => {
      await call("POST", "/user/login/mfa", { mfa_token: mfaToken, code: fields($("code-form")).code });
      reload();
    }));
    $("passkey-second-step").addEventListener("click", guarded(async () => {
      const start = await call("POST", "/user/passkeys/login/start", { mfa_token: mfaToken });
      const credential = await get(start.options);
      await call("POST", "/user/login/mfa", { ceremony: start.ceremony, credential });
      reload();
    }));
    return;
  }

  $("sign-out").addEventListener("click", guarded(async () => {
    await call("POST", "/user/logout");
    reload();
  }));
  $("add-passkey").addEventListener("submit", guarded(async () => {
    const start = await call("POST", "/user/passkeys/register/start");
    const credential = await create(start.options);
    const name = fields($("add-passkey")).name || undefined;
    await call("POST", "/user/passkeys/register/finish", { ceremony: start.ceremony, name, credential });
    reload();
  }));
  document.querySelectorAll("#identities li").forEach((item) => {
    item.querySelector(".unlink").addEventListener("click", guarded(async () => {
      await call("DELETE", `/user/identities/${encodeURIComponent(item.dataset.provider)}`);
      reload();
    }));
  });
  document.querySelectorAll("#passkeys li").forEach((item) => {
    const path = `/user/passkeys/${item.dataset.id}`;
    item.querySelector(".remove").addEventListener("click", guarded(async () => {
      await call("DELETE", path);
      reload();
    }));
    item.querySelector(".rename").addEventListener("click", guarded(async () => {
      const name = window.prompt("", item.querySelector(".name").textContent);
      if (!name) return;
      await call("PATCH", path, { name });
      reload();
    }));
  });
  const showCodes = (codes) => {
    const box = $("recovery-codes");
    const list = box.querySelector("ol");
    list.replaceChildren(...codes.map((code) => {
      const item = document.createElement("li");
      item.textContent = code;
      return item;
    }));
    box.hidden = false;
  };
  const wireConfirm = () => {
    const confirmForm = $("totp-confirm");
    if (!confirmForm) return;
    confirmForm.addEventListener("submit", guarded(async () => {
      const answer = await call("POST", "/user/totp/confirm", fields(confirmForm));
      confirmForm.hidden = true;
      showCodes(answer.recovery_codes);
    }));
  };
  wireConfirm();
  // The server starts the enrollment and draws its QR code into the page's
  // TOTP section, which replaces this one (the secret never sits in a URL).
  const setup = $("totp-setup");
  if (setup) {
    setup.addEventListener("submit", guarded(async () => {
      const response = await fetch("/account/security/totp", { method: "POST", credentials: "same-origin" });
      if (!response.ok) {
        const answer = await response.json().catch(() => ({}));
        throw new Error(answer.code === "reauth_required" ? main.dataset.reauth : (answer.message || response.status));
      }
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      $("totp").replaceWith(document.adoptNode(page.getElementById("totp")));
      wireConfirm();
    }));
  }
  if ($("totp-off")) {
    $("totp-off").addEventListener("click", guarded(async () => {
      await call("DELETE", "/user/totp");
      reload();
    }));
    $("new-codes").addEventListener("click", guarded(async () => {
      showCodes((await call("POST", "/user/recovery-codes")).recovery_codes);
    }));
  }
});
