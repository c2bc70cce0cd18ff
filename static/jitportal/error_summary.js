// Error summaries ([data-error-summary], role="alert", tabindex="-1"): when a page comes back with a form's errors,
// keyboard focus moves to the summary, so keyboard and screen-reader users start at what went wrong. An htmx swap
// (a poll, a fragment) moves focus only when what it brought in holds a summary not already shown on this page:
// a poll that brings the same summary again leaves focus where the user put it.
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
})();
