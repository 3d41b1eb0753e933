// Behaviour every page shares, kept out of the HTML: the Content-Security-Policy runs no inline
// script and no on* attribute.

// <form data-confirm="Question?">: submitted only when the person confirms.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (question && !window.confirm(question)) event.preventDefault();
});

// <select data-submit-on-change>: choosing submits its form (the header's organization switch;
// without JavaScript its <noscript> button does).
document.addEventListener("change", (event) => {
  if (event.target.matches && event.target.matches("select[data-submit-on-change]")) event.target.form.requestSubmit();
});
