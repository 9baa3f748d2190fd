// The field page: fill a check-in form with the phone's position (no inline script: CSP).
(function () {
  "use strict";
  document.querySelectorAll(".geo-form .locate").forEach(function (button) {
    button.addEventListener("click", function () {
      var form = button.closest("form");
      if (!navigator.geolocation) { return; }
      navigator.geolocation.getCurrentPosition(function (pos) {
        form.elements.lon.value = pos.coords.longitude.toFixed(6);
        form.elements.lat.value = pos.coords.latitude.toFixed(6);
      });
    });
  });
})();
