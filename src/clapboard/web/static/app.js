// Disable a form's buttons once it is submitted, so a double click cannot send twice.
// (The entry list, including the clicked button's name/value, is built before this runs.)
document.addEventListener("submit", (event) => {
  const form = event.target;
  setTimeout(() => form.querySelectorAll("button").forEach((b) => { b.disabled = true; }), 0);
});
