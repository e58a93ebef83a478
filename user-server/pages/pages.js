// Submits the account page's form as JSON to the API and shows the outcome.
// A GET of the page never uses the token: only this explicit submit does.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("account-form");
  const outcome = document.getElementById("outcome");
  const show = (text, failed) => {
    outcome.textContent = text;
    outcome.className = failed ? "failed" : "done";
    outcome.hidden = false;
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = Object.fromEntries(new FormData(form).entries());
    if ("repeat" in fields) {
      if (fields.repeat !== fields.password) {
        show(form.dataset.mismatch, true);
        return;
      }
      delete fields.repeat;
    }
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const response = await fetch(form.dataset.endpoint, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(fields),
        credentials: "omit",
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        form.hidden = true;
        show(form.dataset.done, false);
      } else {
        show(`${form.dataset.failed} (${body.message || response.status})`, true);
        button.disabled = false;
      }
    } catch (error) {
      show(`${form.dataset.failed} (${error})`, true);
      button.disabled = false;
    }
  });
});
