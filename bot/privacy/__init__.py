"""Residents' data rights: the privacy notice, withdrawing an appeal, seeing and erasing one's data."""
