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

// Filters left empty stay out of the address, so a bookmarked or shared view names only the
// filters in use ("?status=succeeded", not "?q=&created_from=&created_to=&status=succeeded&…").
document.addEventListener("htmx:configRequest", (event) => {
  const data = event.detail.formData;
  if (!data || event.detail.verb !== "get") return;
  for (const name of new Set(data.keys())) {
    if (data.getAll(name).every((value) => value === "")) data.delete(name);
  }
});
