# CPack: Debian packages (make package). Filled in by the packaging work.
