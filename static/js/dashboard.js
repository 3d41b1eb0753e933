// The dashboard's status list (a <details> in the filter bar) closes on a click elsewhere or on
// Escape, as a menu does. Without JavaScript its summary opens and closes it.
document.addEventListener("click", (event) => {
  document.querySelectorAll("details.dropdown[open]").forEach((menu) => {
    if (!menu.contains(event.target)) menu.open = false;
  });
});
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  document.querySelectorAll("details.dropdown[open]").forEach((menu) => {
    menu.open = false;
    menu.querySelector("summary").focus();
  });
});
