"""The web shell: app factory, middleware, errors, templates and the kernel's own pages."""
