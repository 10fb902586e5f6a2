"""The standard library's CGI adapter, wsgiref.handlers.CGIHandler, serving the test site."""

from wsgiref.handlers import CGIHandler

from testsite.wsgi import application

CGIHandler().run(application)
