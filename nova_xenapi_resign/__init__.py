"""nova-xenapi-resign: SR naming, live migration and resignature for XenAPI."""
