"""One call and the conversation around it.

State tables, recovery, answering, local media and what a call reports.
"""
