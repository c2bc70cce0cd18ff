// Copy buttons (data-line): copy the line, then say whether it worked. The clipboard API exists only on secure
// pages (https, or localhost) and the browser may refuse it; the button then says to copy the line by hand.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy[data-line]");
  if (!button) return;
  const label = button.dataset.label || (button.dataset.label = button.textContent);
  const say = (text) => {
    button.textContent = text;
    setTimeout(() => { button.textContent = label; }, 4000);
  };
  const copying = navigator.clipboard ? navigator.clipboard.writeText(button.dataset.line) : Promise.reject();
  copying.then(() => say("Copied"), () => say("Copy failed: select the line and copy it"));
});
