// The console's one behaviour of its own: a form with data-confirm asks before it posts (releasing a
// conversation, deleting a canned reply). A script file, not an onsubmit attribute: the console's
// Content-Security-Policy runs no inline code.
document.addEventListener(
  "submit",
  function (event) {
    var form = event.target;
    var question = form && form.getAttribute ? form.getAttribute("data-confirm") : null;
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  },
  true
);
