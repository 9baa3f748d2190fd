"""The org tree: district → towns/streets → communities/villages → grids, plus departments and
external units. Stored as a materialised path so that a subtree is one indexed range query."""
