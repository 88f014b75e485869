"""gunicorn's settings that belong to this tree (gunicorn reads ./gunicorn.conf.py): the
command line in project/servers.py holds the rest, the same for any version served."""

# The access log's client-supplied fields escaped (an ESC byte in a request line).
logger_class = "project.gunicorn_log.EscapingLogger"
