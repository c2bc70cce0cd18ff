// Error summaries ([data-error-summary], role="alert", tabindex="-1"): when a page comes back with a form's errors,
// keyboard focus moves to the summary, so keyboard and screen-reader users start at what went wrong. An htmx swap
// (a poll, a fragment) moves focus only when what it brought in holds a summary not already shown on this page:
// a poll that brings the same summary again leaves focus where the user put it.
// A summary's link to a field (href="#id") puts the focus in the field, scrolled to the middle of the window so its
// label shows beside it, without adding "#id" to the page's address: a form without an action posts to that address, and the page it gets
// back would open at the field and leave its new summary unfocused. Without this script the link still works.
(() => {
  const SUMMARY = "[data-error-summary]";
  const key = (summary) => `${summary.id}\n${summary.textContent}`;
  const summaries = document.querySelectorAll(SUMMARY);
  const seen = new Set(Array.from(summaries, key));
  if (summaries.length) summaries[0].focus();

  document.addEventListener("htmx:load", (event) => {
    const root = event.target;
    if (!(root instanceof Element) || root === document.body) return;
    const found = root.matches(SUMMARY) ? root : root.querySelector(SUMMARY);
    if (!found || seen.has(key(found))) return;
    seen.add(key(found));
    found.focus();
  });

  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest(`${SUMMARY} a[href^="#"]`) : null;
    if (!link || event.defaultPrevented || event.button !== 0) return;
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;  // a new tab or window: as it asks
    const field = document.getElementById(decodeURIComponent(link.getAttribute("href").slice(1)));
    if (!field) return;
    event.preventDefault();
    // A field in a closed group (<details>) opens it, as the browser's own jump to #id does.
    for (let group = field.closest("details"); group; group = group.parentElement?.closest("details")) group.open = true;
    field.scrollIntoView({ block: "center" });
    field.focus({ preventScroll: true });
  });
})();
