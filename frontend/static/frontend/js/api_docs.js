// Starts the vendored Swagger UI on the schema the page names. A file, not an inline script,
// so the docs run under the same Content-Security-Policy as every other page.
(function () {
  "use strict";
  function start() {
    const root = document.getElementById("swagger-ui");
    const token = document.querySelector('meta[name="csrf-token"]');
    window.SwaggerUIBundle({
      url: root.dataset.schemaUrl,
      domNode: root,
      deepLinking: true,
      // The default validator is a third-party service; the docs must work offline.
      validatorUrl: null,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      // "Try it out" uses the session, so unsafe methods need the CSRF token.
      requestInterceptor: function (request) {
        if (token) request.headers["X-CSRFToken"] = token.content;
        return request;
      },
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
