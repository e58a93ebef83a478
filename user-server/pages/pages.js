// Submits an account page's form as JSON to the API and shows the outcome.
// A GET of a page never uses a token or decides anything: only an explicit
// submit does. A form says where it goes (data-endpoint), whether cookies go
// along (data-credentials), which field is a boolean (data-boolean), and
// whether the page reloads on success (data-reload) or shows the clicked
// button's (else the form's) data-done text.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-endpoint]");
  const outcome = document.getElementById("outcome");
  if (!form) return;
  const show = (text, failed) => {
    outcome.textContent = text;
    outcome.className = failed ? "failed" : "done";
    outcome.hidden = false;
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const submitter = event.submitter;
    const fields = Object.fromEntries(new FormData(form, submitter).entries());
    if ("repeat" in fields) {
      if (fields.repeat !== fields.password) {
        show(form.dataset.mismatch, true);
        return;
      }
      delete fields.repeat;
    }
    const flag = form.dataset.boolean;
    if (flag && flag in fields) fields[flag] = fields[flag] === "true";
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    const failed = (detail) => {
      show(`${form.dataset.failed} (${detail})`, true);
      buttons.forEach((b) => { b.disabled = false; });
    };
    try {
      const response = await fetch(form.dataset.endpoint, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(fields),
        credentials: form.dataset.credentials || "omit",
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        failed(body.message || response.status);
      } else if (form.dataset.reload) {
        window.location.reload();
      } else {
        form.hidden = true;
        show((submitter && submitter.dataset.done) || form.dataset.done, false);
      }
    } catch (error) {
      failed(error);
    }
  });
});
