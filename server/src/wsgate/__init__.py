"""WSGI gateway for Apache httpd: CGI, FastCGI, mod_fcgid and a CGI relay."""

__version__ = "0.1.0"
