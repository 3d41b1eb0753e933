"""Luma U: two learning tracks about LumaPay itself, one for sub-account users and one for
managers and administrators, with short lessons, quizzes, progress per membership, the team's
progress for managers, and a completion certificate (PDF).

- ``content`` holds the tracks as data (lessons in Markdown, quizzes with explanations);
- ``models`` the progress rows (tenant-owned, row-level security);
- ``selectors`` the reads (which track a member follows, their progress, their team's);
- ``services`` every write (a lesson read, a quiz answered, a track completed);
- ``certificate`` the PDF; ``views``/``urls`` the pages.
"""
