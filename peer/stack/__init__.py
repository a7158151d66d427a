"""Everything that reaches into aiortc, aioice or asyncio internals, behind one seam check."""
