// The case desk's forms that cannot be undone (办结, 退回) ask first. No inline handlers: the console's
// Content-Security-Policy allows only its own scripts.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form && form.getAttribute ? form.getAttribute("data-confirm") : null;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
