from __future__ import annotations

from uauth.app import main

main()
