"""Services between the actors and the web apps: the append path a request thread runs."""
