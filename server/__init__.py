"""kibitz: the web application, its services and the command line."""

from server.http.params import register as _register_paths

# Before any module builds a Route: "{id:int}" must compile to the bounded pattern.
_register_paths()
