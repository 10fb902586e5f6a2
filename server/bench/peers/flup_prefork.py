"""flup 1.0.3 prefork FastCGI server (flup.server.fcgi_fork) serving the test site.

usage: flup_prefork.py SOCKET_PATH CHILDREN
"""

import sys

from flup.server.fcgi_fork import WSGIServer
from testsite.wsgi import application

if __name__ == "__main__":
    sock_path, children = sys.argv[1], int(sys.argv[2])
    server = WSGIServer(
        application,
        bindAddress=sock_path,
        umask=0o007,
        debug=False,
        minSpare=children,
        maxSpare=children,
        maxChildren=children,
    )
    server.run()
