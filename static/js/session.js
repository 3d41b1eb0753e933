// The idle warning. The server signs a member out after the organization's idle timeout
// (org_profile/sessions.py); a minute before, this opens a dialog with a countdown and
// "Stay signed in", which tells the server the member is here. Asking how long is left is not
// activity (the request says it runs in the background). When time runs out, the page goes to the
// sign-in page, which says why and brings the member back here afterwards.
(() => {
  const dialog = document.getElementById("session-warning");
  if (!dialog || typeof dialog.showModal !== "function") return;
  const warningSeconds = Number(dialog.dataset.warningSeconds);
  const secondsText = dialog.querySelector("[data-seconds-left]");
  const stayButton = dialog.querySelector("[data-stay-signed-in]");
  let timer = null;
  let ticker = null;
  let deadline = 0;

  const csrfToken = () => {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch {
      return "";
    }
  };

  const signIn = () => {
    const here = window.location.pathname + window.location.search;
    window.location.assign(`${dialog.dataset.loginUrl}?next=${encodeURIComponent(here)}`);
  };

  // null when signed out; {seconds_left} otherwise.
  const ask = async (url, options) => {
    const response = await fetch(url, { credentials: "same-origin", ...options });
    if (response.status === 401) return null;
    if (!response.ok) throw new Error(`${url}: ${response.status}`);
    return response.json();
  };
  const status = () => ask(dialog.dataset.statusUrl, { headers: { "LumaPay-Background": "true", Accept: "application/json" } });

  const schedule = (secondsLeft) => {
    clearTimeout(timer);
    timer = setTimeout(check, Math.max(0, secondsLeft - warningSeconds) * 1000);
  };

  const close = () => {
    clearInterval(ticker);
    if (dialog.open) dialog.close();
  };

  const tick = () => {
    const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    secondsText.textContent = String(left);
    if (left === 0) {
      clearInterval(ticker);
      // A second's grace, so the server's clock has passed the deadline too.
      timer = setTimeout(expire, 1000);
    }
  };

  const warn = (secondsLeft) => {
    deadline = Date.now() + secondsLeft * 1000;
    tick();
    if (!dialog.open) dialog.showModal();
    stayButton.focus();
    clearInterval(ticker);
    ticker = setInterval(tick, 1000);
  };

  async function check() {
    let data;
    try {
      data = await status();
    } catch {
      schedule(warningSeconds + 5); // the server did not answer: ask again in a few seconds
      return;
    }
    if (data === null) return signIn();
    // Activity in another tab moved the deadline: wait again.
    if (data.seconds_left > warningSeconds) return schedule(data.seconds_left);
    warn(data.seconds_left);
  }

  async function expire() {
    let data = null;
    try {
      data = await status();
    } catch {
      data = null;
    }
    if (data !== null && data.seconds_left > 0) {
      close();
      schedule(data.seconds_left);
      return;
    }
    signIn();
  }

  stayButton.addEventListener("click", async () => {
    let data;
    try {
      data = await ask(dialog.dataset.keepAliveUrl, { method: "POST", headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" } });
    } catch {
      return; // the countdown goes on; the member can press again
    }
    if (data === null) return signIn();
    close();
    schedule(data.seconds_left);
  });
  // Escape would close the dialog without telling the server: treat it as "Stay signed in".
  dialog.addEventListener("cancel", (event) => {
    event.preventDefault();
    stayButton.click();
  });

  // This page's own request counted as activity: the full timeout is left now.
  schedule(Number(dialog.dataset.idleSeconds));
})();
